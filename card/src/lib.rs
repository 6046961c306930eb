//! IC cards through PC/SC: APDUs, the JPKI applet model, the virtual card and the writer. Not built yet: issue 4.
