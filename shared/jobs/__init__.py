"""The job domain layer, in two halves: `requests` is what the API does on a user's behalf
(submit, read, list, cancel, prioritise), with the checks made at submission (`sample_inputs`,
`inversion_inputs`); `reports` is what a worker writes about the attempt it runs (heartbeats,
progress, evaluations, warnings, artifact rows). State changes go through `shared.states`.
"""
