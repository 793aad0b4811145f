"""Files, safely: which files may be read (readable), writes that are all or nothing (atomic), file hashes (digest),
whether a recorded process still lives (process), and object storage URLs (remote: s3://, gs:// through pyarrow.fs).
"""
