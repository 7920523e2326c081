"""Export libraries, one per format: SavedModel (TensorFlow Serving), TFLite, `.keras`."""
