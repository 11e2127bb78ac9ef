"""Neural network parts of ivis: base networks, triplet losses, training and callbacks."""
