//! Load verified plugin packages into the process, exactly the bytes that were checked.
