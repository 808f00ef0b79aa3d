"""The subcommands of ``ipfs-accelerate`` (see :mod:`ipfs_accelerate_py.cli`), one module each
group: ``backends``, ``talk`` (chat, embed, models, usage), ``smoke`` (check), with what they
share in ``common``. Each command takes the parsed arguments and returns an exit code."""
