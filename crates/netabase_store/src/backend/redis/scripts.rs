//! The Lua scripts: every read that must be atomic and every commit is one script, so
//! one round trip, run by Redis without interleaving any other client's command.
//!
//! Every script's first key is the store's version and every read script returns it
//! first, so that a write transaction can tell whether its reads saw one state.

use std::ops::Bound;

use redis::Script;

use crate::backend::{Direction, RawRange};

/// The values at `ARGV` in the hash `KEYS[2]`, after the version.
const GET_MANY: &str = r"
local out = {redis.call('GET', KEYS[1]) or '0'}
local values = redis.call('HMGET', KEYS[2], unpack(ARGV))
for i = 1, #ARGV do out[i + 1] = values[i] end
return out
";

/// At most `ARGV[4]` entries between the lex bounds `ARGV[1]`..`ARGV[2]` of the sorted
/// set `KEYS[2]` (reversed when `ARGV[3]` is `r`), with their values from the hash
/// `KEYS[3]`: the version, then key, value, key, value...
const RANGE: &str = r"
local out = {redis.call('GET', KEYS[1]) or '0'}
local keys
if ARGV[3] == 'r' then
  keys = redis.call('ZREVRANGEBYLEX', KEYS[2], ARGV[2], ARGV[1], 'LIMIT', 0, ARGV[4])
else
  keys = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[1], ARGV[2], 'LIMIT', 0, ARGV[4])
end
if #keys > 0 then
  local values = redis.call('HMGET', KEYS[3], unpack(keys))
  for i = 1, #keys do
    out[2 * i] = keys[i]
    out[2 * i + 1] = values[i]
  end
end
return out
";

/// The version, then the number of entries of the sorted set `KEYS[2]`.
const LEN: &str = r"
return {redis.call('GET', KEYS[1]) or '0', tostring(redis.call('ZCARD', KEYS[2]))}
";

/// The version, then every table name (the sorted set `KEYS[2]`).
const TABLES: &str = r"
local out = {redis.call('GET', KEYS[1]) or '0'}
local names = redis.call('ZRANGE', KEYS[2], 0, -1)
for i = 1, #names do out[i + 1] = names[i] end
return out
";

/// Applies a write set if the version is still `ARGV[1]` (any version when empty):
/// returns the new version, or -1 (and applies nothing) when it moved.
///
/// `ARGV[2]` is the number of tables; then per table: its name, `1` if cleared, the
/// number of puts and of removals, then the puts' keys and values, then the removed
/// keys. `KEYS` are the version, the table names, then each table's sorted set and
/// hash. The arguments are counted before anything is written, so a malformed call
/// fails without a partial write (Redis does not undo a script's writes on error).
const COMMIT: &str = r"
local current = redis.call('GET', KEYS[1]) or '0'
if ARGV[1] ~= '' and ARGV[1] ~= current then return -1 end
local tables = tonumber(ARGV[2])
local i = 3
for t = 1, tables do
  local puts, dels = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  if puts == nil or dels == nil then return redis.error_reply('malformed write set') end
  i = i + 4 + 2 * puts + dels
end
if i - 1 ~= #ARGV or #KEYS ~= 2 + 2 * tables then
  return redis.error_reply('malformed write set')
end
i = 3
for t = 1, tables do
  local order, values = KEYS[1 + 2 * t], KEYS[2 + 2 * t]
  local name, cleared = ARGV[i], ARGV[i + 1]
  local puts, dels = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  i = i + 4
  redis.call('ZADD', KEYS[2], 0, name)
  if cleared == '1' then redis.call('DEL', order, values) end
  for p = 1, puts do
    redis.call('ZADD', order, 0, ARGV[i])
    redis.call('HSET', values, ARGV[i], ARGV[i + 1])
    i = i + 2
  end
  for d = 1, dels do
    redis.call('ZREM', order, ARGV[i])
    redis.call('HDEL', values, ARGV[i])
    i = i + 1
  end
end
return redis.call('INCR', KEYS[1])
";

/// Removes every table of the store (`ARGV[1]` and `ARGV[2]` are the prefixes of the
/// sorted sets and hashes), the table list and the version.
const DESTROY: &str = r"
local names = redis.call('ZRANGE', KEYS[2], 0, -1)
for i = 1, #names do
  redis.call('DEL', ARGV[1] .. names[i], ARGV[2] .. names[i])
end
return redis.call('DEL', KEYS[1], KEYS[2])
";

/// The scripts, loaded into the server on first use (`EVALSHA`, then `SCRIPT LOAD` when
/// the server does not know one, after a restart for instance).
pub(crate) struct Scripts {
    pub(crate) get_many: Script,
    pub(crate) range: Script,
    pub(crate) len: Script,
    pub(crate) tables: Script,
    pub(crate) commit: Script,
    pub(crate) destroy: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Scripts {
            get_many: Script::new(GET_MANY),
            range: Script::new(RANGE),
            len: Script::new(LEN),
            tables: Script::new(TABLES),
            commit: Script::new(COMMIT),
            destroy: Script::new(DESTROY),
        }
    }
}

/// The lex bounds of `range` for `ZRANGEBYLEX` (`-`/`+` unbounded, `[` inclusive, `(`
/// exclusive), lower then upper.
pub(crate) fn lex_bounds(range: &RawRange) -> (Vec<u8>, Vec<u8>) {
    fn bound(b: &Bound<Vec<u8>>, unbounded: u8) -> Vec<u8> {
        match b {
            Bound::Included(k) => [&[b'['][..], k].concat(),
            Bound::Excluded(k) => [&[b'('][..], k].concat(),
            Bound::Unbounded => vec![unbounded],
        }
    }
    (bound(&range.start, b'-'), bound(&range.end, b'+'))
}

/// `ARGV[3]` of [`RANGE`].
pub(crate) fn direction_arg(direction: Direction) -> &'static str {
    match direction {
        Direction::Forward => "f",
        Direction::Reverse => "r",
    }
}
