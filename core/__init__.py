"""Infrastructure that knows no payment: every app may import it, it imports no app."""
