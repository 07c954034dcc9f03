"""deepgrade: autograded Keras exercises, graded in two sandboxed stages.

Importing this package is cheap on purpose: nothing here imports keras, tensorflow or cv2, so
every CLI call starts fast. Heavy imports live inside the functions that need them.
"""

__version__ = "0.1.0"
