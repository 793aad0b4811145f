"""Drawing, and only drawing: the terminal (display: Rich tables and progress; the CLI's event listener), report.html
(report), run comparisons and plots (compare), and the filter of TensorFlow's stderr chatter (quiet).
"""
