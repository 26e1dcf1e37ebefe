//! Cheap scans of YAML text that refuse a hostile document before libyaml
//! parses it: too many anchors and aliases (an alias bomb), or flow
//! collections nested so deep that libyaml's time explodes. Both are
//! over-estimates at worst, which only matters past the limits.

/// A document holding more anchors and aliases than this is refused unparsed.
pub const MAX_YAML_ANCHORS_AND_ALIASES: usize = 100;

/// Roughly counts YAML anchors (`&name`) and aliases (`*name`): a `&` or `*`
/// followed by a name, where a YAML node may start (line start, after `- `,
/// `: `, `? `, `[`, `{` or `,`). Over-counting only matters past the limit.
pub fn count_anchors_and_aliases(yaml: &str) -> usize {
    let mut n = 0;
    for line in yaml.lines() {
        let bytes = line.as_bytes();
        let mut prev_non_space: Option<u8> = None;
        let mut saw_space = true;
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'#' && saw_space {
                break; // a comment
            }
            if (b == b'&' || b == b'*') && node_may_start(prev_non_space, saw_space) {
                if let Some(&next) = bytes.get(i + 1) {
                    if !next.is_ascii_whitespace() && !b",[]{}".contains(&next) {
                        n += 1;
                    }
                }
            }
            if b.is_ascii_whitespace() {
                saw_space = true;
            } else {
                saw_space = false;
                prev_non_space = Some(b);
            }
        }
    }
    n
}

/// Deeper flow nesting (`[[[`, `{a: {a: ...`) is refused before libyaml sees
/// it: libyaml's time grows with the square of the depth (a 400 KB file of
/// `{a: ` takes a minute).
pub const MAX_YAML_FLOW_DEPTH: usize = 64;

/// The deepest nesting of flow collections (`[` and `{` where a YAML node may
/// start), skipping quoted scalars and comments; an over-estimate at worst.
pub fn flow_depth(yaml: &str) -> usize {
    let bytes = yaml.as_bytes();
    let (mut depth, mut max) = (0usize, 0usize);
    let mut prev_non_space: Option<u8> = None;
    let mut saw_space = true;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\n' {
            prev_non_space = None;
            saw_space = true;
            i += 1;
            continue;
        }
        if b == b'#' && saw_space {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let at_node = node_may_start(prev_non_space, saw_space);
        if at_node && (b == b'"' || b == b'\'') {
            // Skip the quoted scalar (it may span lines).
            i += 1;
            while i < bytes.len() {
                if b == b'"' && bytes[i] == b'\\' {
                    i += 2;
                    continue;
                }
                if bytes[i] == b {
                    break;
                }
                i += 1;
            }
        } else if at_node && (b == b'[' || b == b'{') {
            depth += 1;
            max = max.max(depth);
        } else if (b == b']' || b == b'}') && depth > 0 {
            depth -= 1;
        }
        if b.is_ascii_whitespace() {
            saw_space = true;
        } else {
            saw_space = false;
            prev_non_space = Some(b);
        }
        i += 1;
    }
    max
}

fn node_may_start(prev: Option<u8>, saw_space: bool) -> bool {
    match prev {
        None => true,
        Some(b'[') | Some(b'{') | Some(b',') => true,
        Some(b'-') | Some(b':') | Some(b'?') => saw_space,
        _ => false,
    }
}
