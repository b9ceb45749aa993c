"""The HTTP API (Flask): app factory, auth, problem+json errors, and one blueprint per resource.

Views are thin: they parse, call one function of `shared.jobs`, and serialise. The API never
imports torch.
"""
