"""pytest plugin (-p c2summary, with tests/ on sys.path): the summary line
tests/run folds with the C suites' ("tests: N passed, N failed, N skipped")."""


def pytest_terminal_summary(terminalreporter):
    st = terminalreporter.stats
    n = {k: len([r for r in st.get(k, []) if getattr(r, "when", "call") in ("call", "setup")])
         for k in ("passed", "failed", "error", "skipped")}
    terminalreporter.write_line(f"tests: {n['passed']} passed, {n['failed'] + n['error']} failed, "
                                f"{n['skipped']} skipped")
