"""mer: apex-frame micro-expression recognition with leave-one-subject-out evaluation."""

__version__ = "0.1.0"
