//! simforge-eval: simulators, alignment and diagnostic accuracy, DGDPO, co-evolution and reports. Empty until the eval issues land.
