"""The same networks in numpy (float64 reference), PyTorch and Keras."""
