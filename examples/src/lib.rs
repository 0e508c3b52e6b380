//! Examples of embedding `todo-core`; see `examples/`.
