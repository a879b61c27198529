//! nftables from Rust: the user engine keeps its NAT and filter rules in one table of its own
//! (`ip ros-docker`), written straight to the kernel's nf_tables over netlink.
//!
//! - **One table of its own.** The engine never edits rules it did not write and nothing else
//!   edits its table; the host's and the user's tables are left alone, whatever they hold.
//! - **Replaced atomically, as a whole.** [`replace`] sends one nfnetlink batch: create the table
//!   if absent, delete it, build it again with every chain and rule. The kernel commits a batch
//!   whole or not at all, so packets meet the old rule set or the new one, never half of either,
//!   and a rule the kernel refuses leaves the old table in place. No diffing, no rule handles.
//! - **No C library, no binary.** libnftnl and libmnl would be C to link statically, `nft` a
//!   binary with its libraries to ship in the image; the few expressions an engine needs fit
//!   in this one file. They are encoded as `nft` encodes them, so `nft list table ip
//!   ros-docker` on a host being debugged shows them in nft syntax (the tests prove it).
//!
//! Scope: the IPv4 matches an engine writes (interface names, address prefixes, TCP/UDP
//! destination ports, `fib daddr type local`, `ct state established,related`) and the
//! statements it needs (counter, accept, drop, return, jump, masquerade, dnat); nothing more.

use nix::errno::Errno;
use nix::sys::socket::{
    self, sockopt, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};
use nix::sys::time::TimeVal;
use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

// linux/netlink.h
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLM_F_DUMP: u16 = 0x300;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
// linux/netfilter/nfnetlink.h
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNETLINK_V0: u8 = 0;
const NFGENMSG_LEN: usize = 4;
// linux/netfilter/nf_tables.h: messages, then attributes by object.
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFTA_CT_DREG: u16 = 1;
const NFTA_CT_KEY: u16 = 2;
const NFTA_FIB_DREG: u16 = 1;
const NFTA_FIB_RESULT: u16 = 2;
const NFTA_FIB_FLAGS: u16 = 3;
const NFTA_NAT_TYPE: u16 = 1;
const NFTA_NAT_FAMILY: u16 = 2;
const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
const NFTA_NAT_REG_PROTO_MIN: u16 = 5;
const NFTA_NAT_FLAGS: u16 = 7;
// Values. Registers are the 16-byte NFT_REG_1/2, as nft uses them.
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFT_REG_2: u32 = 2;
const NF_DROP: i32 = 0;
const NF_ACCEPT: i32 = 1;
const NFT_JUMP: i32 = -3;
const NFT_RETURN: i32 = -5;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFT_META_IIFNAME: u32 = 6;
const NFT_META_OIFNAME: u32 = 7;
const NFT_META_NFPROTO: u32 = 15;
const NFT_META_L4PROTO: u32 = 16;
const NFT_CT_STATE: u32 = 0;
/// `NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED)`: 1 << (ctinfo + 1).
const CT_STATE_ESTABLISHED_RELATED: u32 = 0x2 | 0x4;
const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
const NFTA_FIB_F_DADDR: u32 = 2;
const RTN_LOCAL: u32 = 2;
const NFT_NAT_DNAT: u32 = 1;
const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 2;
const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
/// libnftnl's `NFTNL_UDATA_RULE_COMMENT`, the TLV `nft` reads a rule's comment from.
const UDATA_RULE_COMMENT: u8 = 0;
/// `NFTNL_UDATA_COMMENT_MAXLEN`, with the NUL.
const COMMENT_MAX: usize = 128;
/// `NFT_NAME_MAXLEN`, with the NUL.
const NAME_MAX: usize = 256;
/// `IFNAMSIZ`, with the NUL.
const IFNAME_MAX: usize = 16;

const REPLY_TIMEOUT_SECS: i64 = 5;
/// Larger than any datagram the kernel sends: dumps are cut at 32 KiB, acks echo one message.
const RECV_BUF: usize = 128 * 1024;
/// A rule set that changes under every dump we try is reported rather than retried forever.
const DUMP_ATTEMPTS: usize = 3;

/// A table's address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `ip`: IPv4.
    Ip,
    /// `inet`: IPv4 and IPv6; IPv4 matches are guarded by `meta nfproto ipv4`, as nft does.
    Inet,
}

impl Family {
    fn code(self) -> u8 {
        match self {
            Family::Ip => NFPROTO_IPV4,
            Family::Inet => NFPROTO_INET,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ip => "ip",
            Family::Inet => "inet",
        })
    }
}

/// The netfilter hook a base chain is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Prerouting = 0,
    Input = 1,
    Forward = 2,
    Output = 3,
    Postrouting = 4,
}

/// A base chain's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainType {
    Filter,
    Nat,
}

impl ChainType {
    fn name(self) -> &'static str {
        match self {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
        }
    }
}

/// A transport protocol, for `meta l4proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// A whole table: what [`replace`] puts in place.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub family: Family,
    pub name: String,
    pub chains: Vec<Chain>,
}

/// A chain; without a [`Base`] it is a regular chain, entered only by a jump.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    pub name: String,
    pub base: Option<Base>,
    pub rules: Vec<Rule>,
}

/// Where a base chain hooks in, and what it does with packets no rule decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Base {
    pub hook: Hook,
    pub priority: i32,
    pub kind: ChainType,
    pub policy_accept: bool,
}

/// One rule, built as nft reads: matches left to right, then its statements.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rule {
    exprs: Vec<Expr>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    /// Output interface (else input), `==` (else `!=`), name.
    Ifname(bool, bool, String),
    /// Destination (else source), `==` (else `!=`), network, prefix length.
    Addr(bool, bool, Ipv4Addr, u8),
    L4proto(Proto),
    Dport(u16),
    FibDaddrLocal,
    CtEstablished,
    Counter,
    Verdict(i32, Option<String>),
    Masquerade,
    Dnat(Ipv4Addr, Option<u16>),
}

impl Rule {
    pub fn new() -> Rule {
        Rule::default()
    }

    fn with(mut self, expr: Expr) -> Self {
        self.exprs.push(expr);
        self
    }

    /// `iifname "docker0"`, or `iifname != "docker0"` when `eq` is false.
    pub fn iifname(self, eq: bool, name: &str) -> Self {
        self.with(Expr::Ifname(false, eq, name.to_owned()))
    }

    /// `oifname "docker0"`, or `oifname != "docker0"` when `eq` is false.
    pub fn oifname(self, eq: bool, name: &str) -> Self {
        self.with(Expr::Ifname(true, eq, name.to_owned()))
    }

    /// `ip saddr 172.17.0.0/16` (`!=` when `eq` is false); prefix 32 is one address.
    pub fn saddr(self, eq: bool, net: Ipv4Addr, prefix: u8) -> Self {
        self.with(Expr::Addr(false, eq, net, prefix))
    }

    /// `ip daddr 127.0.0.0/8` (`!=` when `eq` is false); prefix 32 is one address.
    pub fn daddr(self, eq: bool, net: Ipv4Addr, prefix: u8) -> Self {
        self.with(Expr::Addr(true, eq, net, prefix))
    }

    /// `meta l4proto tcp`.
    pub fn l4proto(self, proto: Proto) -> Self {
        self.with(Expr::L4proto(proto))
    }

    /// `th dport 8080`, listed by nft as `tcp dport 8080`; must follow [`Rule::l4proto`].
    pub fn dport(self, port: u16) -> Self {
        self.with(Expr::Dport(port))
    }

    /// `fib daddr type local`: the destination is an address of this host.
    pub fn fib_daddr_local(self) -> Self {
        self.with(Expr::FibDaddrLocal)
    }

    /// `ct state established,related`.
    pub fn ct_established(self) -> Self {
        self.with(Expr::CtEstablished)
    }

    pub fn counter(self) -> Self {
        self.with(Expr::Counter)
    }

    pub fn accept(self) -> Self {
        self.with(Expr::Verdict(NF_ACCEPT, None))
    }

    pub fn drop(self) -> Self {
        self.with(Expr::Verdict(NF_DROP, None))
    }

    pub fn ret(self) -> Self {
        self.with(Expr::Verdict(NFT_RETURN, None))
    }

    pub fn jump(self, chain: &str) -> Self {
        self.with(Expr::Verdict(NFT_JUMP, Some(chain.to_owned())))
    }

    pub fn masquerade(self) -> Self {
        self.with(Expr::Masquerade)
    }

    /// `dnat ip to 172.17.0.2:80` (`dnat ip to 172.17.0.2` without a port).
    pub fn dnat(self, addr: Ipv4Addr, port: Option<u16>) -> Self {
        self.with(Expr::Dnat(addr, port))
    }

    /// `comment "…"`: at most 127 bytes.
    pub fn comment(mut self, text: &str) -> Self {
        self.comment = Some(text.to_owned());
        self
    }

    /// Refuses what the kernel would refuse or nft could not read back, before anything is sent.
    fn check(&self, what: &str) -> Result<(), NftError> {
        let mut l4proto = false;
        for expr in &self.exprs {
            match expr {
                Expr::Ifname(_, _, name) => check_name(name, IFNAME_MAX, "interface", what)?,
                Expr::Addr(.., prefix) if *prefix > 32 => {
                    return Err(rule_error(what, format!("prefix /{prefix} is over 32")));
                }
                Expr::L4proto(_) => l4proto = true,
                Expr::Dport(port) if !l4proto => {
                    let problem = format!("dport {port} needs l4proto (tcp or udp) before it");
                    return Err(rule_error(what, problem));
                }
                Expr::Verdict(_, Some(chain)) => check_name(chain, NAME_MAX, "chain", what)?,
                _ => {}
            }
        }
        if let Some(text) = &self.comment {
            if text.contains('\0') || text.len() >= COMMENT_MAX {
                let problem = format!("comment {text:?}: more than 127 bytes or a NUL byte");
                return Err(rule_error(what, problem));
            }
        }
        Ok(())
    }

    /// The expressions, as nft emits them; the rule has passed [`Rule::check`].
    fn encode(&self, w: &mut Writer, family: Family) {
        let mut ipv4_known = family == Family::Ip;
        for item in &self.exprs {
            match item {
                Expr::Ifname(out, eq, name) => {
                    meta(w, [NFT_META_IIFNAME, NFT_META_OIFNAME][usize::from(*out)]);
                    // An exact name as iptables-nft writes it: the name and its NUL (nft pads
                    // to IFNAMSIZ; both list as `iifname "docker0"`).
                    cmp(w, *eq, &[name.as_bytes(), b"\0"].concat());
                }
                Expr::Addr(dst, eq, net, prefix) => {
                    ipv4_only(w, &mut ipv4_known);
                    let offset = if *dst { 16 } else { 12 };
                    payload(w, NFT_PAYLOAD_NETWORK_HEADER, offset, 4);
                    let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
                    if *prefix < 32 {
                        bitwise(w, &mask.to_be_bytes());
                    }
                    cmp(w, *eq, &(u32::from(*net) & mask).to_be_bytes());
                }
                Expr::L4proto(proto) => {
                    meta(w, NFT_META_L4PROTO);
                    cmp(w, true, &[if *proto == Proto::Tcp { 6 } else { 17 }]);
                }
                Expr::Dport(port) => {
                    payload(w, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
                    cmp(w, true, &port.to_be_bytes());
                }
                Expr::FibDaddrLocal => {
                    expr(w, "fib", |w| {
                        w.u32(NFTA_FIB_DREG, NFT_REG_1);
                        w.u32(NFTA_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
                        w.u32(NFTA_FIB_FLAGS, NFTA_FIB_F_DADDR);
                    });
                    cmp(w, true, &RTN_LOCAL.to_ne_bytes());
                }
                Expr::CtEstablished => {
                    expr(w, "ct", |w| {
                        w.u32(NFTA_CT_KEY, NFT_CT_STATE);
                        w.u32(NFTA_CT_DREG, NFT_REG_1);
                    });
                    bitwise(w, &CT_STATE_ESTABLISHED_RELATED.to_ne_bytes());
                    cmp(w, false, &0u32.to_ne_bytes());
                }
                Expr::Counter => expr(w, "counter", |_| {}),
                Expr::Verdict(code, chain) => expr(w, "immediate", |w| {
                    w.u32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
                    let data = w.nest(NFTA_IMMEDIATE_DATA);
                    let verdict = w.nest(NFTA_DATA_VERDICT);
                    w.attr(NFTA_VERDICT_CODE, &code.to_be_bytes());
                    if let Some(chain) = chain {
                        w.str(NFTA_VERDICT_CHAIN, chain);
                    }
                    w.end(verdict);
                    w.end(data);
                }),
                Expr::Masquerade => expr(w, "masq", |_| {}),
                Expr::Dnat(addr, port) => {
                    ipv4_only(w, &mut ipv4_known);
                    immediate(w, NFT_REG_1, &addr.octets());
                    if let Some(port) = port {
                        immediate(w, NFT_REG_2, &port.to_be_bytes());
                    }
                    expr(w, "nat", |w| {
                        w.u32(NFTA_NAT_TYPE, NFT_NAT_DNAT);
                        w.u32(NFTA_NAT_FAMILY, u32::from(NFPROTO_IPV4));
                        w.u32(NFTA_NAT_REG_ADDR_MIN, NFT_REG_1);
                        if port.is_some() {
                            w.u32(NFTA_NAT_REG_PROTO_MIN, NFT_REG_2);
                            w.u32(NFTA_NAT_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
                        }
                    });
                }
            }
        }
    }
}

/// What went wrong, naming the object it went wrong with.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The kernel refused an object (`what`: e.g. "rule 3 of chain postrouting in table ip
    /// ros-docker"); a refused batch changed nothing.
    #[error("{what}: {errno}")]
    Kernel { what: String, errno: Errno },
    /// A table, chain or interface name the kernel would refuse.
    #[error("{what}: {problem}")]
    Name { what: String, problem: String },
    /// A rule that cannot be encoded: a port without a protocol, a prefix over 32, a long comment.
    #[error("{what}: {problem}")]
    Rule { what: String, problem: String },
    /// The netlink socket failed: open, send, receive, or no reply within 5 s.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// A reply that is not what netlink promises: short, misaligned, an impossible error code.
    #[error("{context}: malformed reply from the kernel: {problem}")]
    Reply { context: String, problem: String },
}

fn kernel_error(what: impl Into<String>, errno: Errno) -> NftError {
    let what = what.into();
    NftError::Kernel { what, errno }
}

fn rule_error(what: &str, problem: String) -> NftError {
    let what = what.to_owned();
    NftError::Rule { what, problem }
}

fn io_error(context: &str, errno: Errno) -> NftError {
    let (context, source) = (context.to_owned(), errno.into());
    NftError::Io { context, source }
}

fn reply_error(context: &str, problem: impl Into<String>) -> NftError {
    let (context, problem) = (context.to_owned(), problem.into());
    NftError::Reply { context, problem }
}

/// `max` counts the NUL, as the kernel's limits do.
fn check_name(name: &str, max: usize, kind: &str, what: &str) -> Result<(), NftError> {
    let problem = if name.is_empty() {
        format!("{kind} name is empty")
    } else if name.contains('\0') {
        format!("{kind} name {name:?} holds a NUL byte")
    } else if name.len() >= max {
        let len = name.len();
        format!(
            "{kind} name {name:?} is {len} bytes, longer than {}",
            max - 1
        )
    } else {
        return Ok(());
    };
    let what = what.to_owned();
    Err(NftError::Name { what, problem })
}

/// Puts `table` in place of the table of that family and name, whole, in one transaction: the
/// new table with all its chains and rules, or (on any error) the old table untouched. The
/// table is made anew, so its counters start again at zero. Needs CAP_NET_ADMIN in the
/// network namespace.
pub fn replace(table: &Table) -> Result<(), NftError> {
    let batch = encode_replace(table)?;
    commit(&batch)?;
    let rules: usize = table.chains.iter().map(|c| c.rules.len()).sum();
    let (family, chains) = (table.family, table.chains.len());
    tracing::debug!(%family, table = %table.name, chains, rules, "nftables table replaced");
    Ok(())
}

/// Deletes the table with its chains and rules; a table that is not there is not an error.
pub fn delete(family: Family, name: &str) -> Result<(), NftError> {
    let what = format!("table {family} {name}");
    check_name(name, NAME_MAX, "table", &what)?;
    let mut batch = Batch::new(what.clone());
    // Creating it first makes the delete succeed whether or not it existed.
    batch.table(format!("{what} (create)"), NFT_MSG_NEWTABLE, family, name);
    batch.table(what, NFT_MSG_DELTABLE, family, name);
    commit(&batch.finish()?)
}

/// How many rules the table holds, or None when it does not exist.
pub fn rule_count(family: Family, name: &str) -> Result<Option<usize>, NftError> {
    let what = format!("table {family} {name}");
    check_name(name, NAME_MAX, "table", &what)?;
    let socket = Socket::open(&what)?;
    let table = [name.as_bytes(), b"\0"].concat();
    // A dump of rules does not say whether the table exists: ask for the table, then dump its
    // rules; a commit in between or during the dump shows as another generation or as
    // NLM_F_DUMP_INTR, and we ask again.
    for seq in (1..).step_by(2).take(DUMP_ATTEMPTS) {
        let mut gen = None;
        let get = (NFT_MSG_GETTABLE, NLM_F_ACK, seq);
        let found = socket.request(get, family, (NFTA_TABLE_NAME, name), |reply| {
            gen = gen.or(generation(reply).filter(|_| reply.ty == nft_type(NFT_MSG_NEWTABLE)));
            Ok(())
        })?;
        match found {
            Some(Errno::ENOENT) => return Ok(None),
            Some(errno) => return Err(kernel_error(what, errno)),
            None => {}
        }
        let (mut count, mut consistent) = (0, gen.is_some());
        let dump = (NFT_MSG_GETRULE, NLM_F_DUMP, seq + 1);
        let done = socket.request(dump, family, (NFTA_RULE_TABLE, name), |reply| {
            consistent &= reply.flags & NLM_F_DUMP_INTR == 0;
            if reply.ty == nft_type(NFT_MSG_NEWRULE) {
                consistent &= generation(reply) == gen;
                let attrs = reply.payload.get(NFGENMSG_LEN..).and_then(parse_attrs);
                let attrs = attrs.ok_or_else(|| reply_error(&what, "a rule's attributes"))?;
                count += usize::from(attrs.contains(&(NFTA_RULE_TABLE, &table[..])));
            }
            Ok(())
        })?;
        if let Some(errno) = done {
            let what = format!("{what}: rule dump");
            return Err(kernel_error(what, errno));
        }
        if consistent {
            return Ok(Some(count));
        }
    }
    let what = format!("{what}: counting rules, the rule set kept changing");
    Err(kernel_error(what, Errno::EAGAIN))
}

fn encode_replace(table: &Table) -> Result<Batch, NftError> {
    let (family, name) = (table.family, table.name.as_str());
    let t = format!("table {family} {name}");
    check_name(name, NAME_MAX, "table", &t)?;
    let mut batch = Batch::new(t.clone());
    batch.table(format!("{t} (create)"), NFT_MSG_NEWTABLE, family, name);
    batch.table(format!("{t} (delete)"), NFT_MSG_DELTABLE, family, name);
    batch.table(t.clone(), NFT_MSG_NEWTABLE, family, name);
    for chain in &table.chains {
        let what = format!("chain {} in {t}", chain.name);
        check_name(&chain.name, NAME_MAX, "chain", &what)?;
        // EXCL: the table is new, so a second chain of the same name is a mistake to report.
        let flags = NLM_F_CREATE | NLM_F_EXCL;
        batch.object(what, NFT_MSG_NEWCHAIN, flags, family, |w| {
            w.str(NFTA_CHAIN_TABLE, name);
            w.str(NFTA_CHAIN_NAME, &chain.name);
            if let Some(base) = &chain.base {
                let hook = w.nest(NFTA_CHAIN_HOOK);
                w.u32(NFTA_HOOK_HOOKNUM, base.hook as u32);
                w.attr(NFTA_HOOK_PRIORITY, &base.priority.to_be_bytes());
                w.end(hook);
                let policy = [NF_DROP, NF_ACCEPT][usize::from(base.policy_accept)];
                w.attr(NFTA_CHAIN_POLICY, &policy.to_be_bytes());
                w.str(NFTA_CHAIN_TYPE, base.kind.name());
            }
        });
    }
    // Rules after every chain, so a jump may name any chain of the table.
    for chain in &table.chains {
        for (i, rule) in chain.rules.iter().enumerate() {
            let what = format!("rule {} of chain {} in {t}", i + 1, chain.name);
            rule.check(&what)?;
            let flags = NLM_F_CREATE | NLM_F_APPEND;
            batch.object(what, NFT_MSG_NEWRULE, flags, family, |w| {
                w.str(NFTA_RULE_TABLE, name);
                w.str(NFTA_RULE_CHAIN, &chain.name);
                let list = w.nest(NFTA_RULE_EXPRESSIONS);
                rule.encode(w, family);
                w.end(list);
                if let Some(text) = &rule.comment {
                    // One libnftnl udata TLV: type, length with the NUL (at most 128, checked),
                    // the text, the NUL.
                    let mut udata = vec![UDATA_RULE_COMMENT, (text.len() + 1) as u8];
                    udata.extend_from_slice(text.as_bytes());
                    udata.push(0);
                    w.attr(NFTA_RULE_USERDATA, &udata);
                }
            });
        }
    }
    batch.finish()
}

/// Netlink messages and attributes appended to one buffer (a batch is messages back to back).
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
    /// An attribute past 64 KiB: its u16 length cannot say it; `finish` reports it.
    overflow: bool,
}

impl Writer {
    /// Header and nfgenmsg; `nlmsg_len` is written by [`Writer::end_message`].
    fn message(&mut self, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: to the kernel
        self.buf.extend_from_slice(&[family, NFNETLINK_V0]);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        start
    }

    fn end_message(&mut self, start: usize) {
        let len = u32::try_from(self.buf.len() - start).unwrap_or_else(|_| {
            self.overflow = true;
            0
        });
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    /// Starts an attribute whose value follows; [`Writer::end`] writes its length and pads it.
    fn begin(&mut self, ty: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        start
    }

    fn nest(&mut self, ty: u16) -> usize {
        self.begin(ty | NLA_F_NESTED)
    }

    fn end(&mut self, start: usize) {
        let len = u16::try_from(self.buf.len() - start).unwrap_or_else(|_| {
            self.overflow = true;
            0
        });
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self.buf.resize(align4(self.buf.len()), 0);
    }

    fn attr(&mut self, ty: u16, value: &[u8]) {
        let start = self.begin(ty);
        self.buf.extend_from_slice(value);
        self.end(start);
    }

    /// nf_tables integers are big-endian.
    fn u32(&mut self, ty: u16, value: u32) {
        self.attr(ty, &value.to_be_bytes());
    }

    /// A NUL-terminated string.
    fn str(&mut self, ty: u16, value: &str) {
        let start = self.begin(ty);
        self.buf.extend_from_slice(value.as_bytes());
        self.buf.push(0);
        self.end(start);
    }
}

/// An nf_tables message type: the subsystem in the high byte.
fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// One element of a rule's expression list: `NFTA_LIST_ELEM { NAME, DATA { … } }`.
fn expr(w: &mut Writer, name: &str, data: impl FnOnce(&mut Writer)) {
    let elem = w.nest(NFTA_LIST_ELEM);
    w.str(NFTA_EXPR_NAME, name);
    let nest = w.nest(NFTA_EXPR_DATA);
    data(w);
    w.end(nest);
    w.end(elem);
}

fn data_value(w: &mut Writer, ty: u16, value: &[u8]) {
    let nest = w.nest(ty);
    w.attr(NFTA_DATA_VALUE, value);
    w.end(nest);
}

fn meta(w: &mut Writer, key: u32) {
    expr(w, "meta", |w| {
        w.u32(NFTA_META_KEY, key);
        w.u32(NFTA_META_DREG, NFT_REG_1);
    });
}

fn cmp(w: &mut Writer, eq: bool, value: &[u8]) {
    expr(w, "cmp", |w| {
        w.u32(NFTA_CMP_SREG, NFT_REG_1);
        w.u32(NFTA_CMP_OP, if eq { NFT_CMP_EQ } else { NFT_CMP_NEQ });
        data_value(w, NFTA_CMP_DATA, value);
    });
}

fn payload(w: &mut Writer, base: u32, offset: u32, len: u32) {
    expr(w, "payload", |w| {
        w.u32(NFTA_PAYLOAD_DREG, NFT_REG_1);
        w.u32(NFTA_PAYLOAD_BASE, base);
        w.u32(NFTA_PAYLOAD_OFFSET, offset);
        w.u32(NFTA_PAYLOAD_LEN, len);
    });
}

/// `reg1 = (reg1 & mask) ^ 0`.
fn bitwise(w: &mut Writer, mask: &[u8]) {
    expr(w, "bitwise", |w| {
        w.u32(NFTA_BITWISE_SREG, NFT_REG_1);
        w.u32(NFTA_BITWISE_DREG, NFT_REG_1);
        w.u32(NFTA_BITWISE_LEN, mask.len() as u32);
        data_value(w, NFTA_BITWISE_MASK, mask);
        data_value(w, NFTA_BITWISE_XOR, &vec![0; mask.len()]);
    });
}

fn immediate(w: &mut Writer, reg: u32, value: &[u8]) {
    expr(w, "immediate", |w| {
        w.u32(NFTA_IMMEDIATE_DREG, reg);
        data_value(w, NFTA_IMMEDIATE_DATA, value);
    });
}

/// In an inet table, `meta nfproto ipv4` once before the rule's first IPv4-only expression.
fn ipv4_only(w: &mut Writer, known: &mut bool) {
    if !*known {
        meta(w, NFT_META_NFPROTO);
        cmp(w, true, &[NFPROTO_IPV4]);
        *known = true;
    }
}

/// A batch: BATCH_BEGIN (seq 1), the objects (seq 2…, each acked, each named), BATCH_END.
#[derive(Default)]
struct Batch {
    w: Writer,
    /// The table, for errors that are not one object's.
    what: String,
    objects: Vec<(u32, String)>,
}

impl Batch {
    fn new(what: String) -> Batch {
        let mut batch = Batch {
            what,
            ..Batch::default()
        };
        batch.marker(NFNL_MSG_BATCH_BEGIN);
        batch
    }

    /// BATCH_BEGIN or BATCH_END, addressed to nf_tables by res_id.
    fn marker(&mut self, ty: u16) {
        let seq = self.objects.len() as u32 + 1;
        let start = self
            .w
            .message(ty, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES);
        self.w.end_message(start);
    }

    fn object(
        &mut self,
        what: String,
        msg: u16,
        flags: u16,
        family: Family,
        body: impl FnOnce(&mut Writer),
    ) {
        let seq = self.objects.len() as u32 + 2;
        let flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        let start = self.w.message(nft_type(msg), flags, seq, family.code(), 0);
        body(&mut self.w);
        self.w.end_message(start);
        self.objects.push((seq, what));
    }

    fn table(&mut self, what: String, msg: u16, family: Family, name: &str) {
        let flags = if msg == NFT_MSG_NEWTABLE {
            NLM_F_CREATE
        } else {
            0
        };
        self.object(what, msg, flags, family, |w| w.str(NFTA_TABLE_NAME, name));
    }

    fn finish(mut self) -> Result<Batch, NftError> {
        self.marker(NFNL_MSG_BATCH_END);
        if self.w.overflow {
            let problem = "an attribute is longer than 64 KiB".to_owned();
            return Err(rule_error(&self.what, problem));
        }
        Ok(self)
    }
}

/// Sends the batch and waits for every object's ack; the first refusal names its object.
fn commit(batch: &Batch) -> Result<(), NftError> {
    let socket = Socket::open(&batch.what)?;
    if batch.objects.len() > 64 {
        // Every object is acked, and a large batch's acks would overflow the default buffer.
        let size = batch.objects.len() * 2048;
        let set = socket::setsockopt(&socket.fd, sockopt::RcvBufForce, &size);
        set.map_err(|e| socket.io("set SO_RCVBUFFORCE", e))?;
    }
    if batch.w.buf.len() > 64 * 1024 {
        let size = batch.w.buf.len() * 2;
        let set = socket::setsockopt(&socket.fd, sockopt::SndBufForce, &size);
        set.map_err(|e| socket.io("set SO_SNDBUFFORCE", e))?;
    }
    socket.send(&batch.w.buf)?;
    let mut pending: BTreeSet<u32> = batch.objects.iter().map(|o| o.0).collect();
    let mut refused: Option<(u32, Errno)> = None;
    let mut buf = vec![0; RECV_BUF];
    while !pending.is_empty() {
        let len = socket.recv(&mut buf)?;
        for reply in parse_messages(&buf[..len], &batch.what)? {
            if reply.ty != NLMSG_ERROR {
                continue;
            }
            let errno = reply_errno(&reply, &batch.what)?;
            if pending.remove(&reply.seq) {
                if let Some(errno) = errno {
                    if refused.is_none_or(|(seq, _)| reply.seq < seq) {
                        refused = Some((reply.seq, errno));
                    }
                }
            } else if let Some(errno) = errno {
                // On the batch itself (no CAP_NET_ADMIN, a malformed batch): no acks follow.
                let what = format!("{} (the batch)", batch.what);
                return Err(kernel_error(what, errno));
            }
        }
    }
    let Some((seq, errno)) = refused else {
        return Ok(());
    };
    let object = batch.objects.iter().find(|o| o.0 == seq);
    Err(kernel_error(object.map_or(&batch.what, |o| &o.1), errno))
}

/// One message of a reply, borrowed from the receive buffer.
struct Message<'a> {
    ty: u16,
    flags: u16,
    seq: u32,
    payload: &'a [u8],
}

fn parse_messages<'a>(mut buf: &'a [u8], context: &str) -> Result<Vec<Message<'a>>, NftError> {
    let mut messages = Vec::new();
    while !buf.is_empty() {
        let field = |at| bytes::<4>(buf, at).ok_or_else(|| reply_error(context, "short header"));
        let len = u32::from_ne_bytes(field(0)?) as usize;
        let [ty0, ty1, flags0, flags1] = field(4)?;
        let seq = u32::from_ne_bytes(field(8)?);
        let Some(payload) = buf.get(NLMSG_HDRLEN..len) else {
            let problem = format!("message length {len} of {}", buf.len());
            return Err(reply_error(context, problem));
        };
        let (ty, flags) = (
            u16::from_ne_bytes([ty0, ty1]),
            u16::from_ne_bytes([flags0, flags1]),
        );
        messages.push(Message {
            ty,
            flags,
            seq,
            payload,
        });
        buf = buf.get(align4(len)..).unwrap_or_default();
    }
    Ok(messages)
}

/// `N` bytes of `buf` from `at`, if it holds them.
fn bytes<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// The errno of an NLMSG_ERROR (None for an ack) or the code of an NLMSG_DONE.
fn reply_errno(message: &Message, context: &str) -> Result<Option<Errno>, NftError> {
    let Some(code) = bytes(message.payload, 0).map(i32::from_ne_bytes) else {
        return Err(reply_error(context, "an error message without its code"));
    };
    match code.checked_neg() {
        Some(0) => Ok(None),
        Some(errno) if errno > 0 => Ok(Some(Errno::from_raw(errno))),
        _ => Err(reply_error(context, format!("error code {code}"))),
    }
}

/// The attributes of `buf`, type (without flags) and value.
fn parse_attrs(mut buf: &[u8]) -> Option<Vec<(u16, &[u8])>> {
    let mut attrs = Vec::new();
    while buf.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes(bytes(buf, 0)?));
        let ty = u16::from_ne_bytes(bytes(buf, 2)?) & NLA_TYPE_MASK;
        attrs.push((ty, buf.get(4..len)?));
        buf = buf.get(align4(len)..).unwrap_or_default();
    }
    Some(attrs)
}

/// The generation of the rule set a reply was made in (nfgenmsg's res_id).
fn generation(message: &Message) -> Option<u16> {
    bytes(message.payload, 2).map(u16::from_be_bytes)
}

/// A NETLINK_NETFILTER socket; `context` (the table) opens every error it reports.
struct Socket {
    fd: OwnedFd,
    context: String,
}

impl Socket {
    fn open(context: &str) -> Result<Socket, NftError> {
        let io = |doing: &str, e| io_error(&format!("{context}: {doing}"), e);
        let (domain, protocol) = (AddressFamily::Netlink, SockProtocol::NetlinkNetFilter);
        let fd = socket::socket(domain, SockType::Raw, SockFlag::SOCK_CLOEXEC, protocol)
            .map_err(|e| io("open a NETLINK_NETFILTER socket", e))?;
        socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(|e| io("bind", e))?;
        let timeout = TimeVal::new(REPLY_TIMEOUT_SECS, 0);
        socket::setsockopt(&fd, sockopt::ReceiveTimeout, &timeout)
            .map_err(|e| io("set SO_RCVTIMEO", e))?;
        let context = context.to_owned();
        Ok(Socket { fd, context })
    }

    fn io(&self, doing: &str, errno: Errno) -> NftError {
        io_error(&format!("{}: {doing}", self.context), errno)
    }

    fn send(&self, bytes: &[u8]) -> Result<(), NftError> {
        let kernel = NetlinkAddr::new(0, 0);
        let sent = socket::sendto(self.fd.as_raw_fd(), bytes, &kernel, MsgFlags::empty())
            .map_err(|e| self.io("send to nf_tables", e))?;
        if sent != bytes.len() {
            let doing = format!("sent {sent} of {} bytes", bytes.len());
            return Err(self.io(&doing, Errno::EMSGSIZE));
        }
        Ok(())
    }

    fn recv(&self, buf: &mut [u8]) -> Result<usize, NftError> {
        loop {
            // MSG_TRUNC: the datagram's real length, so a cut reply is seen, not misread.
            match socket::recv(self.fd.as_raw_fd(), buf, MsgFlags::MSG_TRUNC) {
                Ok(len) if len > buf.len() => {
                    return Err(reply_error(&self.context, format!("a {len}-byte datagram")))
                }
                Ok(len) => return Ok(len),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => {
                    let doing = format!("no reply from nf_tables in {REPLY_TIMEOUT_SECS} s");
                    return Err(self.io(&doing, Errno::ETIMEDOUT));
                }
                Err(e) => return Err(self.io("receive from nf_tables", e)),
            }
        }
    }

    /// Sends one request with one string attribute and shows `each` every reply to it, up to
    /// the last (an ack's NLMSG_ERROR, a dump's NLMSG_DONE), whose errno it returns.
    fn request(
        &self,
        (msg, flags, seq): (u16, u16, u32),
        family: Family,
        (ty, value): (u16, &str),
        mut each: impl FnMut(&Message) -> Result<(), NftError>,
    ) -> Result<Option<Errno>, NftError> {
        let mut w = Writer::default();
        let start = w.message(nft_type(msg), NLM_F_REQUEST | flags, seq, family.code(), 0);
        w.str(ty, value);
        w.end_message(start);
        self.send(&w.buf)?;
        let mut buf = vec![0; RECV_BUF];
        loop {
            let len = self.recv(&mut buf)?;
            for reply in parse_messages(&buf[..len], &self.context)? {
                if reply.seq != seq {
                    continue;
                }
                each(&reply)?;
                if reply.ty == NLMSG_ERROR || reply.ty == NLMSG_DONE {
                    return reply_errno(&reply, &self.context);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The objects of an encoded batch: (message type, flags, attributes after nfgenmsg).
    fn messages(batch: &Batch) -> Vec<(u16, u16, Vec<u8>)> {
        let parsed = parse_messages(&batch.w.buf, "test").expect("well-formed batch");
        parsed
            .iter()
            .map(|m| (m.ty, m.flags, m.payload[NFGENMSG_LEN..].to_vec()))
            .collect()
    }

    fn attr(attrs: &[u8], ty: u16) -> Vec<u8> {
        let found = parse_attrs(attrs)
            .expect("attributes")
            .into_iter()
            .find(|a| a.0 == ty);
        found.expect("attribute present").1.to_vec()
    }

    /// The expression names of a rule message, in order.
    fn expr_names(rule_attrs: &[u8]) -> Vec<String> {
        let list = attr(rule_attrs, NFTA_RULE_EXPRESSIONS);
        let elems = parse_attrs(&list).expect("expression list");
        let names = elems.iter().map(|(_, elem)| attr(elem, NFTA_EXPR_NAME));
        names
            .map(|n| String::from_utf8_lossy(n.strip_suffix(b"\0").expect("NUL")).into())
            .collect()
    }

    fn one_rule_table(family: Family, rule: Rule) -> Table {
        let chain = Chain {
            name: "c".into(),
            base: None,
            rules: vec![rule],
        };
        Table {
            family,
            name: "t".into(),
            chains: vec![chain],
        }
    }

    #[test]
    fn attributes_are_aligned_nested_and_big_endian() {
        let mut w = Writer::default();
        w.str(1, "abc"); // 4 + "abc\0": no padding
        w.str(2, "abcd"); // 4 + 5, padded to 12
        let nest = w.nest(3);
        w.u32(4, 0x0102_0304);
        w.end(nest);
        let mut want = vec![8, 0, 1, 0, b'a', b'b', b'c', 0];
        want.extend([9, 0, 2, 0, b'a', b'b', b'c', b'd', 0, 0, 0, 0]);
        want.extend([12, 0, 3, 0x80, 8, 0, 4, 0, 1, 2, 3, 4]);
        assert_eq!(w.buf, want);
        assert!(!w.overflow);
        w.attr(5, &vec![0; 70_000]);
        assert!(w.overflow, "a 70 KB attribute cannot be encoded");
    }

    #[test]
    fn constants_match_the_kernel_headers() {
        assert_eq!(i32::from(NFNL_SUBSYS_NFTABLES), libc::NFNL_SUBSYS_NFTABLES);
        assert_eq!(i32::from(NFNL_MSG_BATCH_BEGIN), libc::NFNL_MSG_BATCH_BEGIN);
        assert_eq!(i32::from(NFT_MSG_NEWRULE), libc::NFT_MSG_NEWRULE);
        assert_eq!(NFT_META_L4PROTO as i32, libc::NFT_META_L4PROTO);
        assert_eq!(
            NFT_PAYLOAD_TRANSPORT_HEADER as i32,
            libc::NFT_PAYLOAD_TRANSPORT_HEADER
        );
        assert_eq!(NFT_RETURN, libc::NFT_RETURN);
        assert_eq!(NFT_REG_1 as i32, libc::NFT_REG_1);
        assert_eq!(RTN_LOCAL, u32::from(libc::RTN_LOCAL));
        assert_eq!(Hook::Postrouting as i32, libc::NF_INET_POST_ROUTING);
        assert_eq!(i32::from(Family::Inet.code()), libc::NFPROTO_INET);
    }

    #[test]
    fn a_batch_is_begin_table_objects_end_each_acked() {
        let rule = Rule::new()
            .l4proto(Proto::Tcp)
            .dport(8080)
            .counter()
            .accept();
        let batch = encode_replace(&one_rule_table(Family::Ip, rule)).expect("encodes");
        let msgs = messages(&batch);
        let types: Vec<u16> = msgs.iter().map(|m| m.0).collect();
        let t = nft_type;
        let table = [
            t(NFT_MSG_NEWTABLE),
            t(NFT_MSG_DELTABLE),
            t(NFT_MSG_NEWTABLE),
        ];
        let mut want = vec![NFNL_MSG_BATCH_BEGIN];
        want.extend(table);
        want.extend([t(NFT_MSG_NEWCHAIN), t(NFT_MSG_NEWRULE), NFNL_MSG_BATCH_END]);
        assert_eq!(types, want);
        assert!(msgs[1..6].iter().all(|m| m.1 & NLM_F_ACK != 0));
        assert_eq!(
            msgs[5].1,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND
        );
        // The batch header addresses nf_tables (res_id, big-endian).
        assert_eq!(&batch.w.buf[NLMSG_HDRLEN..NLMSG_HDRLEN + 4], &[0, 0, 0, 10]);
        let names = ["meta", "cmp", "payload", "cmp", "counter", "immediate"];
        assert_eq!(expr_names(&msgs[5].2), names);
        assert_eq!(batch.objects[4].1, "rule 1 of chain c in table ip t");
        let seqs: Vec<u32> = batch.objects.iter().map(|o| o.0).collect();
        assert_eq!(seqs, [2, 3, 4, 5, 6], "increasing, after BATCH_BEGIN's 1");
    }

    #[test]
    fn prefixes_are_masked_and_inet_rules_are_guarded() {
        let rule = Rule::new().saddr(false, Ipv4Addr::new(172, 17, 3, 4), 16);
        let batch = encode_replace(&one_rule_table(Family::Inet, rule)).expect("encodes");
        let rule_attrs = &messages(&batch)[5].2;
        let names = ["meta", "cmp", "payload", "bitwise", "cmp"];
        assert_eq!(expr_names(rule_attrs), names);
        let list = attr(rule_attrs, NFTA_RULE_EXPRESSIONS);
        let elems = parse_attrs(&list).expect("list");
        let data = |i: usize| attr(elems[i].1, NFTA_EXPR_DATA);
        let value = |i: usize, ty: u16| attr(&attr(&data(i), ty), NFTA_DATA_VALUE);
        assert_eq!(value(3, NFTA_BITWISE_MASK), [255, 255, 0, 0]);
        assert_eq!(value(4, NFTA_CMP_DATA), [172, 17, 0, 0]);
        assert_eq!(attr(&data(4), NFTA_CMP_OP), NFT_CMP_NEQ.to_be_bytes());
        assert_eq!(attr(&data(2), NFTA_PAYLOAD_OFFSET), 12u32.to_be_bytes());
        // An exact address has no bitwise.
        let rule = Rule::new().daddr(true, Ipv4Addr::LOCALHOST, 32);
        let batch = encode_replace(&one_rule_table(Family::Ip, rule)).expect("encodes");
        assert_eq!(expr_names(&messages(&batch)[5].2), ["payload", "cmp"]);
    }

    #[test]
    fn comments_are_nft_udata() {
        let rule = Rule::new().accept().comment("hi");
        let batch = encode_replace(&one_rule_table(Family::Ip, rule)).expect("encodes");
        assert_eq!(
            attr(&messages(&batch)[5].2, NFTA_RULE_USERDATA),
            [0, 3, b'h', b'i', 0]
        );
    }

    #[test]
    fn bad_names_and_rules_are_refused_before_the_kernel() {
        let long = "x".repeat(256);
        let table = Table {
            family: Family::Ip,
            name: long,
            chains: vec![],
        };
        let err = replace(&table).expect_err("a 256-byte table name");
        assert!(matches!(err, NftError::Name { .. }), "{err:?}");
        assert!(
            err.to_string().contains("is 256 bytes, longer than 255"),
            "{err}"
        );
        assert!(matches!(
            delete(Family::Ip, "a\0b"),
            Err(NftError::Name { .. })
        ));
        assert!(matches!(
            rule_count(Family::Ip, ""),
            Err(NftError::Name { .. })
        ));

        let refused = |rule: Rule| encode_replace(&one_rule_table(Family::Ip, rule)).err();
        let err = refused(Rule::new().iifname(true, "a-very-long-ifname0")).expect("16+ bytes");
        assert!(matches!(err, NftError::Name { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with("rule 1 of chain c in table ip t: interface name"),
            "{text}"
        );
        assert!(refused(Rule::new().oifname(true, "fifteen-bytes-0")).is_none());
        let err = refused(Rule::new().dport(80)).expect("no l4proto");
        assert!(err.to_string().contains("needs l4proto"), "{err}");
        let prefix = refused(Rule::new().saddr(true, Ipv4Addr::UNSPECIFIED, 33));
        assert!(matches!(prefix, Some(NftError::Rule { .. })));
        assert!(refused(Rule::new().comment(&"c".repeat(128))).is_some());
        assert!(refused(Rule::new().comment(&"c".repeat(127))).is_none());
        assert!(refused(Rule::new().jump("")).is_some());
    }

    #[test]
    fn hostile_replies_are_errors_not_panics() {
        assert!(parse_messages(&[1, 2, 3], "t").is_err());
        let mut short = 8u32.to_ne_bytes().to_vec();
        short.extend([0; 12]);
        assert!(
            parse_messages(&short, "t").is_err(),
            "length below the header"
        );
        let mut long = 400u32.to_ne_bytes().to_vec();
        long.extend([0; 12]);
        assert!(
            parse_messages(&long, "t").is_err(),
            "length past the datagram"
        );
        let code = |payload: &[u8]| {
            let message = Message {
                ty: NLMSG_ERROR,
                flags: 0,
                seq: 1,
                payload,
            };
            reply_errno(&message, "t").ok()
        };
        assert_eq!(code(&[]), None, "no code");
        assert_eq!(code(&1i32.to_ne_bytes()), None, "a positive code");
        assert_eq!(code(&i32::MIN.to_ne_bytes()), None, "a code with no errno");
        assert_eq!(code(&(-2i32).to_ne_bytes()), Some(Some(Errno::ENOENT)));
        assert_eq!(code(&0i32.to_ne_bytes()), Some(None), "an ack");
        assert!(
            parse_attrs(&[2, 0, 1, 0]).is_none(),
            "attribute shorter than its header"
        );
        assert!(
            parse_attrs(&[9, 0, 1, 0, 0]).is_none(),
            "attribute past the buffer"
        );
    }

    use super::super::in_new_netns;

    const LOCAL: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 0);
    const BRIDGE: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 0);
    const CONTAINER: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 2);

    fn base(hook: Hook, priority: i32, kind: ChainType) -> Option<Base> {
        Some(Base {
            hook,
            priority,
            kind,
            policy_accept: true,
        })
    }

    /// The table a docker-like engine keeps: published ports, masquerade, forwarding.
    fn docker_table() -> Table {
        let chain = |name: &str, base, rules| Chain {
            name: name.into(),
            base,
            rules,
        };
        let prerouting = vec![Rule::new().fib_daddr_local().jump("ports")];
        let output = vec![Rule::new()
            .daddr(false, LOCAL, 8)
            .fib_daddr_local()
            .jump("ports")];
        let ports = vec![
            Rule::new()
                .iifname(false, "docker0")
                .l4proto(Proto::Tcp)
                .dport(8080)
                .dnat(CONTAINER, Some(80)),
            Rule::new()
                .iifname(false, "docker0")
                .l4proto(Proto::Udp)
                .dport(5353)
                .dnat(CONTAINER, None),
        ];
        let postrouting = vec![Rule::new()
            .saddr(true, BRIDGE, 16)
            .oifname(false, "docker0")
            .masquerade()];
        let forward = vec![
            Rule::new()
                .oifname(true, "docker0")
                .ct_established()
                .accept(),
            Rule::new()
                .iifname(true, "docker0")
                .oifname(false, "docker0")
                .counter()
                .accept(),
            Rule::new()
                .iifname(true, "docker0")
                .oifname(true, "docker0")
                .accept()
                .comment("icc"),
        ];
        let chains = vec![
            chain(
                "prerouting",
                base(Hook::Prerouting, -100, ChainType::Nat),
                prerouting,
            ),
            chain("output", base(Hook::Output, -100, ChainType::Nat), output),
            chain("ports", None, ports),
            chain(
                "postrouting",
                base(Hook::Postrouting, 100, ChainType::Nat),
                postrouting,
            ),
            chain(
                "forward",
                base(Hook::Forward, 0, ChainType::Filter),
                forward,
            ),
        ];
        Table {
            family: Family::Ip,
            name: "ros-docker".into(),
            chains,
        }
    }

    fn count(name: &str) -> Option<usize> {
        rule_count(Family::Ip, name).expect("rule_count")
    }

    /// `nft list table …` in this thread's namespace, when nft is installed.
    fn nft_list(family: &str, name: &str) -> Option<String> {
        if !std::path::Path::new("/usr/sbin/nft").exists() {
            eprintln!("no /usr/sbin/nft: listing not checked");
            return None;
        }
        let out = Command::new("/usr/sbin/nft")
            .args(["list", "table", family, name])
            .output();
        let out = out.expect("run nft");
        assert!(
            out.status.success(),
            "nft: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("utf-8");
        println!("{text}");
        Some(text)
    }

    #[test]
    fn replace_lists_in_nft_syntax_shrinks_and_deletes() {
        in_new_netns(|| {
            assert_eq!(count("ros-docker"), None);
            let table = docker_table();
            replace(&table).expect("replace");
            assert_eq!(count("ros-docker"), Some(8));
            assert_eq!(rule_count(Family::Inet, "ros-docker").expect("count"), None);
            if let Some(text) = nft_list("ip", "ros-docker") {
                for want in [
                    "chain prerouting {\n\t\ttype nat hook prerouting priority dstnat;",
                    "type nat hook output priority -100; policy accept;",
                    "type nat hook postrouting priority srcnat; policy accept;",
                    "type filter hook forward priority filter; policy accept;",
                    "fib daddr type local jump ports",
                    "ip daddr != 127.0.0.0/8 fib daddr type local jump ports",
                    "iifname != \"docker0\" tcp dport 8080 dnat to 172.17.0.2:80",
                    "iifname != \"docker0\" udp dport 5353 dnat to 172.17.0.2\n",
                    "ip saddr 172.17.0.0/16 oifname != \"docker0\" masquerade",
                    "oifname \"docker0\" ct state established,related accept",
                    "iifname \"docker0\" oifname != \"docker0\" counter packets 0 bytes 0 accept",
                    "iifname \"docker0\" oifname \"docker0\" accept comment \"icc\"",
                ] {
                    assert!(text.contains(want), "{want:?} is not in:\n{text}");
                }
            }

            // Again, smaller: the forward chain goes, in the same one transaction.
            let mut smaller = table.clone();
            smaller.chains.retain(|c| c.name != "forward");
            replace(&smaller).expect("replace with fewer rules");
            assert_eq!(count("ros-docker"), Some(5));
            if let Some(text) = nft_list("ip", "ros-docker") {
                assert!(!text.contains("forward"), "{text}");
            }

            delete(Family::Ip, "ros-docker").expect("delete");
            assert_eq!(count("ros-docker"), None);
            delete(Family::Ip, "ros-docker").expect("delete an absent table");
        });
    }

    #[test]
    fn a_refused_rule_is_named_and_leaves_the_old_table() {
        in_new_netns(|| {
            let table = docker_table();
            replace(&table).expect("replace");
            let mut bad = table.clone();
            let ports = bad
                .chains
                .iter_mut()
                .find(|c| c.name == "ports")
                .expect("ports");
            ports.rules.push(Rule::new().jump("nosuch"));
            bad.chains.retain(|c| c.name != "forward");
            let err = replace(&bad).expect_err("a jump to no chain");
            match &err {
                NftError::Kernel { what, errno } => {
                    assert_eq!(what, "rule 3 of chain ports in table ip ros-docker");
                    assert_eq!(*errno, Errno::ENOENT);
                }
                other => panic!("not a kernel refusal: {other}"),
            }
            println!("refused: {err}");
            assert_eq!(count("ros-docker"), Some(8));
        });
    }

    #[test]
    fn inet_tables_guard_ipv4_matches() {
        in_new_netns(|| {
            let rules = vec![Rule::new()
                .saddr(true, Ipv4Addr::new(10, 0, 0, 0), 8)
                .l4proto(Proto::Tcp)
                .dport(22)
                .dnat(CONTAINER, Some(2222))];
            let chain = Chain {
                name: "pre".into(),
                base: base(Hook::Prerouting, -100, ChainType::Nat),
                rules,
            };
            let table = Table {
                family: Family::Inet,
                name: "ros-test".into(),
                chains: vec![chain],
            };
            replace(&table).expect("replace an inet table");
            assert_eq!(
                rule_count(Family::Inet, "ros-test").expect("count"),
                Some(1)
            );
            if let Some(text) = nft_list("inet", "ros-test") {
                let want = "ip saddr 10.0.0.0/8 tcp dport 22 dnat ip to 172.17.0.2:2222";
                assert!(text.contains(want), "{want:?} is not in:\n{text}");
            }
        });
    }
}
