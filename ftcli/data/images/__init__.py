"""Images: image folders, decoding, the model processor's resize, the pixel cache, batched augmentation."""
