"""params.yaml: reading it (:mod:`.load`) and one typed, validated settings object per section.

:mod:`.data` (``data``, ``datasets``, ``subsets``), :mod:`.train` (``models``), :mod:`.run`
(``run``) and :mod:`.evaluate` (``evaluate``). Each stage script parses the sections it reads
when it starts and passes the settings on; library code never indexes a raw params mapping.
"""
