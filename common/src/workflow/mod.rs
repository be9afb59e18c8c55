//! Workflow files: YAML parsing and validation.
