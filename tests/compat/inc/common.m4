dnl common.m4: found through -I inc; site settings shared by every host
define(`confMAX_HEADERS_LENGTH', `65536')dnl
define(`confBAD_RCPT_THROTTLE', `2')dnl
