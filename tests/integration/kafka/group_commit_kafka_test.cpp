// The group commit abort test on real Apache Kafka, where read_committed hides an aborted
// group's records (the dev broker cannot show that): see tests/integration/api/group_commit_test.cpp.
#define ULTRACORE_GROUP_COMMIT_ON_REAL_KAFKA
#include "integration/api/group_commit_test.cpp"
