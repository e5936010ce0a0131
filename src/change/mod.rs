//! The ChangeRequest lifecycle: phase transitions and the hash-chained history.
