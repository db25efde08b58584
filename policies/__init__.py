"""The policy and nothing else: oso, the world it reasons about, situations, the compiled decision table,
explanations, the matrix, properties and diffs. It imports no other package of ours."""
