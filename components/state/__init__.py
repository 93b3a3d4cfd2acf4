"""What the pipeline keeps between runs, and where: storage for local folders and buckets, the serving root, the
statistics store and each published version's provenance.
"""
