"""Sub-commands of the ``sovra`` command, one module per area; ``sovra.cli`` assembles them."""
