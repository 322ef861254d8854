"""Programmes and enrolment: the catalogue (rules as data, audited edits) and the
enrolment lifecycle proposed → verified → active (approved) | rejected → suspended → ended."""
