//! Build, sign and run real plugin packages and nestd processes for end-to-end tests.
