//! Applications: DAGs of microservices (E3 Table 3), shared by the placement model and the
//! request generators.
