"""CLAP (HTSAT audio tower and its text tower): the ``clap`` encoder and CLAP audio–text similarity."""
