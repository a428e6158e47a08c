"""GANs and conditional GANs trained on the user's own image folders."""
