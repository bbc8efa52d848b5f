//! The control plane: cluster topology, application DAGs and their placement.
