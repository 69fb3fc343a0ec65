//! Records a node persists (defined with the engine).
