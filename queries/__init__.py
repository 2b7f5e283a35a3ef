"""The bundled controls: one SQL file per control (see README, "Controls")."""
