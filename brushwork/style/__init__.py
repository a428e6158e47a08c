"""Style transfer engines and the loss core they share."""
