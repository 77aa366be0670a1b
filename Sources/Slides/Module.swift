/// Whole-slide images: reading, tissue, colour, synthetic slides. See the files of this module.
