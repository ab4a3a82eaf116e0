"""Design drafts for review by a person: pipelines, serving scaffolds, monitoring configs, runbooks."""
