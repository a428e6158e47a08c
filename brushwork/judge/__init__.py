"""Judge: measures of images and videos (FID/KID between image sets, temporal flicker), scores and ratings."""
