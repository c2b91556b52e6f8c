"""Viewer: follows the ``fraud`` topic and shows each alert once, merged across its records.

``alerts`` parses and merges records (pure), ``render`` turns alerts into plain lines, JSON lines
or a live terminal table, ``escaping`` keeps record text from acting on the terminal, ``follow``
reads the topic from Kafka, ``run`` is the loop between them and ``cli`` turns flags and
environment into :class:`~viewer.cli.ViewerSettings`. ``python -m viewer`` runs it.
"""
