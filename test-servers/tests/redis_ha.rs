//! The replicated Redis fault tests start: the Sentinels promote a replica
//! when the primary is killed, and the old primary rejoins as a replica.

use test_servers::{redis_role, RedisHa};

#[test]
fn the_sentinels_promote_a_replica_when_the_primary_is_killed() {
    let ha = RedisHa::start(1);
    let old = ha.primary();
    assert_eq!(old.port(), ha.members()[0].port());
    assert_eq!(redis_role(&ha.members()[1]), "slave");
    old.kill();
    let new = ha.wait_for_failover(old.port());
    assert_eq!(new.port(), ha.members()[1].port());
    // Back after the crash, the old primary is made a replica of the new one.
    old.resume();
    ha.wait_until_replicating(old);
    assert_eq!(redis_role(old), "slave");
}
