"""Judge: algorithmic measures of images (FID/KID between image sets)."""
