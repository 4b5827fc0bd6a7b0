"""Inputs: how raw rows become model inputs, and which model reads them (text, words, images, CLIP's two towers)."""
