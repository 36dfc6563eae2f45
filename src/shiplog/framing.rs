//! Where one record ends in a file's bytes: a line (JSON lines) or an XML message (ISO 20022,
//! one message per file or several concatenated). Pure: no I/O.
//!
//! An XML message is its root element, from `<Envelope` (SPI's) or `<Document` to the matching
//! `</Envelope>` / `</Document>`, with what precedes it (an `<?xml …?>` declaration, comments,
//! whitespace) skipped. The end is found by the root's closing tag, not by parsing, so a message
//! that is not well-formed inside is still one record (and goes to the DLQ as `MALFORMED_XML`);
//! bytes that do not start an element (junk between messages) are a record of their own up to
//! the next `<`, refused the same way. A message still being written — no closing tag yet —
//! waits, like a line without its newline.

/// How a file's bytes are cut into records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Framing {
    /// One record per line (`\n`; a trailing `\r` is dropped).
    #[default]
    Lines,
    /// One record per XML root element.
    Xml,
}

/// The first complete record of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Where the record's bytes start (after skipped whitespace and prolog).
    pub start: usize,
    /// Where they end (exclusive).
    pub end: usize,
    /// Where the next record's search starts (after a line's newline).
    pub next: usize,
}

impl Framing {
    /// The first complete record of `buf`, or `None` when it is not complete yet.
    pub fn next(self, buf: &[u8]) -> Option<Frame> {
        match self {
            Framing::Lines => {
                let nl = memchr(b'\n', buf)?;
                let end = if nl > 0 && buf[nl - 1] == b'\r' { nl - 1 } else { nl };
                Some(Frame { start: 0, end, next: nl + 1 })
            }
            Framing::Xml => xml(buf),
        }
    }
}

impl Framing {
    /// How many leading bytes of `buf` belong to no record whatever follows (whitespace
    /// between XML messages): taken at once, so a position reaches the end of a file that ends
    /// with a newline.
    pub fn insignificant(self, buf: &[u8]) -> usize {
        match self {
            Framing::Lines => 0,
            Framing::Xml => buf.iter().take_while(|b| b.is_ascii_whitespace()).count(),
        }
    }
}

fn memchr(b: u8, buf: &[u8]) -> Option<usize> {
    memchr::memchr(b, buf)
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    memchr::memmem::find(hay.get(from..)?, needle).map(|p| p + from)
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80
}

fn xml(buf: &[u8]) -> Option<Frame> {
    let mut i = 0;
    // A byte-order mark, whitespace, declarations, comments and DOCTYPEs before the root
    // belong to no record.
    loop {
        while i < buf.len() && buf[i].is_ascii_whitespace() {
            i += 1;
        }
        let rest = &buf[i..];
        if rest.starts_with(b"\xEF\xBB\xBF") {
            i += 3;
        } else if rest.starts_with(b"<?") {
            i = find(buf, b"?>", i + 2)? + 2;
        } else if rest.starts_with(b"<!--") {
            i = find(buf, b"-->", i + 4)? + 3;
        } else if rest.starts_with(b"<!") {
            i = doctype_end(buf, i + 2)?;
        } else {
            break;
        }
    }
    let start = i;
    if start == buf.len() {
        return None;
    }
    if buf[start] != b'<' || !buf.get(start + 1).copied().is_some_and(is_name_start) {
        // Not an element: junk up to the next `<` (or waits for one).
        let end = memchr(b'<', &buf[start + 1..]).map(|p| p + start + 1)?;
        return Some(Frame { start, end, next: end });
    }
    // A message that is not finished has no closing tag of its root yet: no need to parse it
    // (a large message arrives in many reads).
    let name = root_name(&buf[start..])?;
    let self_closing = memchr(b'>', &buf[start..]).is_some_and(|p| p > 0 && buf[start + p - 1] == b'/');
    if !self_closing && find(buf, &[b"</".as_slice(), name].concat(), start).is_none() {
        return None;
    }
    let end = match parsed_end(&buf[start..]) {
        Parsed::End(n) => start + n,
        Parsed::Incomplete => return None,
        // Not well-formed: the root's closing tag still ends it (the parser then says why).
        Parsed::Malformed => closing_tag_end(buf, start)?,
    };
    Some(Frame { start, end, next: end })
}

/// After `<!DOCTYPE …>`, its internal subset (`[…]`) included.
fn doctype_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (j, &b) in buf.iter().enumerate().skip(from) {
        match b {
            b'[' => depth += 1,
            b']' => depth = depth.saturating_sub(1),
            b'>' if depth == 0 => return Some(j + 1),
            _ => {}
        }
    }
    None
}

enum Parsed {
    /// The root element ends after this many bytes.
    End(usize),
    /// Well-formed so far, not finished.
    Incomplete,
    Malformed,
}

/// Where the root element starting `buf` ends, read by an XML parser: comments, CDATA and
/// nested elements of the root's name do not end it.
fn parsed_end(buf: &[u8]) -> Parsed {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(buf);
    let mut scratch = Vec::new();
    let mut depth = 0usize;
    loop {
        let event = reader.read_event_into(&mut scratch);
        let at = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        match event {
            Ok(Event::Start(_)) => depth += 1,
            Ok(Event::End(_)) => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Parsed::End(at);
                }
            }
            Ok(Event::Empty(_)) if depth == 0 => return Parsed::End(at),
            Ok(Event::Eof) => return Parsed::Incomplete,
            Ok(_) => {}
            // quick-xml's syntax errors are all "the input ended inside a comment, CDATA, tag…":
            // the rest of the message is not there yet (an unfinished message at the end of a
            // file that stopped growing is shipped as it is: see `follow`).
            Err(quick_xml::Error::Syntax(_)) => return Parsed::Incomplete,
            Err(_) if at >= buf.len() => return Parsed::Incomplete,
            Err(_) => return Parsed::Malformed,
        }
        scratch.clear();
    }
}

/// The end of the root's closing tag, found as bytes (for a message the parser refuses).
fn closing_tag_end(buf: &[u8], start: usize) -> Option<usize> {
    let name = root_name(&buf[start..])?;
    let tag_end = memchr(b'>', &buf[start + 1 + name.len()..]).map(|p| p + start + 1 + name.len())?;
    if buf[tag_end - 1] == b'/' {
        return Some(tag_end + 1);
    }
    let mut from = tag_end;
    loop {
        let close = find(buf, b"</", from)?;
        let after = close + 2 + name.len();
        if buf.get(close + 2..after)? == name {
            let mut j = after;
            while j < buf.len() && buf[j].is_ascii_whitespace() {
                j += 1;
            }
            match buf.get(j) {
                Some(b'>') => return Some(j + 1),
                None => return None,
                Some(_) => {} // `</DocumentX>`: another element.
            }
        }
        from = close + 2;
    }
}

/// The qualified name of the element whose start tag begins `buf` (`<Envelope …` → `Envelope`).
pub fn root_name(buf: &[u8]) -> Option<&[u8]> {
    let rest = buf.strip_prefix(b"<")?;
    let end = rest.iter().position(|&b| b.is_ascii_whitespace() || b == b'>' || b == b'/')?;
    Some(&rest[..end]).filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn records(framing: Framing, mut buf: &[u8]) -> (Vec<String>, usize) {
        let mut out = Vec::new();
        let mut consumed = 0;
        while let Some(f) = framing.next(buf) {
            out.push(String::from_utf8_lossy(&buf[f.start..f.end]).into_owned());
            buf = &buf[f.next..];
            consumed += f.next;
        }
        (out, consumed)
    }

    #[test]
    fn lines_end_at_newlines_and_lose_a_carriage_return() {
        assert_eq!(records(Framing::Lines, b"a\r\nb\n\nc"), (vec!["a".into(), "b".into(), String::new()], 6));
    }

    #[test]
    fn xml_messages_are_framed_by_their_root_whatever_surrounds_them() {
        let two = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- archived -->\n<Envelope xmlns=\"x\"><AppHdr/><Document><X/></Document></Envelope>\n\
                   <Document><PmtRtr><Document2/></PmtRtr></Document >\n";
        let (got, consumed) = records(Framing::Xml, two.as_bytes());
        assert_eq!(
            got,
            [
                "<Envelope xmlns=\"x\"><AppHdr/><Document><X/></Document></Envelope>",
                "<Document><PmtRtr><Document2/></PmtRtr></Document >"
            ]
        );
        assert_eq!(consumed, two.len() - 1, "the trailing newline waits for the next message");
    }

    #[test]
    fn an_unfinished_message_waits_and_junk_is_a_record_of_its_own() {
        assert_eq!(Framing::Xml.next(b"<Envelope><Document>"), None);
        assert_eq!(Framing::Xml.next(b"<Envelope></Envelope"), None);
        assert_eq!(Framing::Xml.next(b"<?xml version"), None);
        let (got, _) = records(Framing::Xml, b"garbage here <Document/> </Stray> <Document></Document>");
        assert_eq!(got, ["garbage here ", "<Document/>", "</Stray> ", "<Document></Document>"]);
        // A message broken inside is still one record: the parser says what is wrong.
        let (got, _) = records(Framing::Xml, b"<Document><A></B></Document><Document/>");
        assert_eq!(got, ["<Document><A></B></Document>", "<Document/>"]);
    }

    #[test]
    fn comments_cdata_nesting_a_bom_and_a_doctype_do_not_fool_it() {
        let tricky = "\u{feff}<!DOCTYPE Envelope [<!ENTITY a \"b\">]>\n<Envelope><!-- </Envelope> -->\
                      <Document><Ustrd><![CDATA[pay </Envelope> now]]></Ustrd><Envelope>inner</Envelope></Document>\
                      </Envelope>\n<Document/>";
        let (got, _) = records(Framing::Xml, tricky.as_bytes());
        assert_eq!(
            got,
            [
                "<Envelope><!-- </Envelope> --><Document><Ustrd><![CDATA[pay </Envelope> now]]></Ustrd>\
                 <Envelope>inner</Envelope></Document></Envelope>",
                "<Document/>"
            ]
        );
        // A comment still open, a CDATA section still open: the message is not there yet.
        assert_eq!(Framing::Xml.next(b"<Envelope><!-- </Envelope>"), None);
        assert_eq!(Framing::Xml.next(b"<Envelope><![CDATA[ </Envelope>"), None);
        assert_eq!(root_name(b"<ns:Document xmlns:ns='x'>"), Some(b"ns:Document".as_slice()));
    }

    proptest! {
        /// Messages written one after another, cut at any byte, come out whole and in order.
        #[test]
        fn concatenated_messages_survive_any_cut(
            bodies in proptest::collection::vec(
                prop_oneof![
                    "[a-zA-Z0-9 ]{0,20}",
                    "[a-z ]{0,8}".prop_map(|t| format!("<!-- </Envelope> {t} -->")),
                    "[a-z ]{0,8}".prop_map(|t| format!("<![CDATA[</Document> {t}]]>")),
                    "[a-z]{1,8}".prop_map(|t| format!("<Document><Document>{t}</Document></Document>")),
                ],
                1..6,
            ),
            cut in 0usize..400,
            sep in "[ \n\t]{0,3}",
        ) {
            let messages: Vec<String> = bodies
                .iter()
                .enumerate()
                .map(|(i, b)| if i % 2 == 0 {
                    format!("<Envelope><Document><T>{b}</T></Document></Envelope>")
                } else {
                    format!("<?xml version=\"1.0\"?><Document><T>{b}</T></Document>")
                })
                .collect();
            let all = messages.join(&sep);
            let cut = cut.min(all.len());
            // Read in two parts: what is complete in the first, then the rest with the leftover.
            let (first, used) = records(Framing::Xml, &all.as_bytes()[..cut]);
            let (second, _) = records(Framing::Xml, &all.as_bytes()[used..]);
            let got: Vec<String> = first.into_iter().chain(second).collect();
            let want: Vec<String> = messages
                .iter()
                .map(|m| m.strip_prefix("<?xml version=\"1.0\"?>").unwrap_or(m).to_owned())
                .collect();
            prop_assert_eq!(got, want);
        }
    }
}
