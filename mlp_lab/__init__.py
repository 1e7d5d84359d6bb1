"""mlp-lab: the 'training neural networks' lecture as a command-line lab."""

__version__ = "0.1.0"
