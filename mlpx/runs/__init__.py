"""One run from a composed config: building and training it (or a hand-written network), and
its own folder.
"""
