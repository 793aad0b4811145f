"""Files, safely: which files may be read (readable), writes that are all or nothing (atomic), file hashes (digest) and
whether a recorded process still lives (process).
"""
