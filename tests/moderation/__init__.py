"""Tests of moderation: settings, input rules, output check, audit log and the façade."""
