"""Viewer: follows the ``fraud`` topic and shows each case once; ``verify`` scores the alerts.

``alerts`` parses records and merges them per window (pure), ``cases`` groups a pair's
overlapping windows of one burst into a case (pure), ``render`` turns them into plain or JSON
lines and ``live`` into a live terminal view (footer counts from ``tally``, keys from ``keys``),
``escaping`` keeps record text from acting on the terminal, ``follow`` reads topics from Kafka,
``run`` is the loop between them and ``cli`` turns flags and environment into
:class:`~viewer.cli.ViewerSettings`. ``python -m viewer`` runs it. ``scoring`` (pure) and
``verify`` (``python -m viewer.verify``) check the alerts against the generator's ground truth.
"""
