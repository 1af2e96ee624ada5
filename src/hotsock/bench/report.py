"""The bench's text: one table per part, then the targets."""
from .contenders import GSO_SCALE
from .rigs import GRO_BUFFER, GRO_BUFFERS, SEGMENTS

# part: (title, the contenders the others are compared with), in the report's order
TABLES = {
    "recv": ("receive: each contender drains its chunk from a queue filled beforehand",
             ("stdlib recvfrom", "C recvmmsg loop")),
    "send": ("send", ("stdlib sendto", "C sendmmsg loop")),
    "capture": ("capture: as receive, hotsock writing each chunk to a new capture file "
                "(hotsock.capture(sock, path, count=chunk)); the C capture loop does the same "
                "work in plain C; 1-datagram calls write to /dev/null (a new file costs ~40 us, in C "
                "too)", ("C recvmmsg loop", "C capture loop")),
    "echo": ("echo: each contender echoes a chunk queued on the server socket back to "
             "the client (hotsock.echo(sock, count=chunk); the endpoints: a protocol in an event "
             "loop, hotsock's answering each batch with one send_batch)",
             ("stdlib echo loop", "C echo loop")),
    "asyncio": ("asyncio: datagram endpoints, each in an event loop of its own, draining a "
                "chunk queued before its turn: asyncio's and uvloop's with a classic "
                "DatagramProtocol (a bytes object per datagram), hotsock.asyncio's with the same "
                "protocol and with the batch protocol (datagrams_received)",
                ("asyncio endpoint", "C recvmmsg loop")),
    "gso": (f"gso: each contender sends segmented sends of {SEGMENTS} datagrams (UDP_SEGMENT) -- "
            "the stdlib one by one -- to a receiver emptied after each turn; the segmented "
            f"senders send {GSO_SCALE} chunks a turn, the stdlib one (rates are datagrams/s)",
            ("stdlib sendto", "C GSO send loop")),
    "gro": ("gro: each contender drains its chunk, queued beforehand as coalesced buffers "
            f"of {SEGMENTS} datagrams (UDP_GRO; {GRO_BUFFERS} buffers of {GRO_BUFFER >> 10} KiB "
            "per call) -- the stdlib one by one from a socket without UDP_GRO, filled the "
            "same way",
            ("stdlib recvfrom", "C GRO recv loop")),
}


def _table(title, bases, result):
    """A part's lines: the title, a header, a row per contender (and, where
    the part measured it, the column of one-datagram calls)."""
    rates, single = result["rates"], result.get("one_datagram_us")
    lines = [f"{title}; {result['chunk']} datagrams per contender per round"]
    header = f"{'':24}{'M dgrams/s':>11}" + "".join(f"{'vs ' + b:>22}" for b in bases)
    if single:
        header += f"{'1-datagram call':>17}"
    lines.append(header)
    for name, rate in rates.items():
        line = f"{name:24}{rate / 1e6:11.3f}" + "".join(
            f"{rate / rates[b]:21.2f}x" for b in bases)
        if single:
            line += f"{single[name]:14.1f} us"
        lines.append(line)
    return lines


def format_report(report):
    """The report (see ``run``) as the text ``hotsock bench`` prints."""
    lines = [f"hotsock bench: {report['size']}-byte datagrams on loopback; "
             f"{report['rounds']} rounds, median round; batches of {report['batch']}, "
             f"receive buffers of {report['recv_bufsize']} bytes (hotsock.capture and "
             f"hotsock.echo: their defaults)", ""]
    for part, (title, bases) in TABLES.items():
        if part in report.get("skipped", {}):
            lines.append(f"{part}: skipped: {report['skipped'][part]}")
            lines.append("")
        if part in report["parts"]:
            lines += _table(title, bases, report["parts"][part])
            lines.append("")
    lines.append("targets:")
    for item in report["ratios"]:
        mark = "met" if item["ratio"] >= item["target"] else "MISSED"
        lines.append(f"  {item['what']:42} {item['ratio']:6.2f}  (>= {item['target']})  {mark}")
    return "\n".join(lines)
