"""Model families: resolving and loading weights, text encoders, image classifiers, CLIP/SigLIP, architecture
layouts."""
