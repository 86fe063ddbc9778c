module github.com/ot-redundancy/ot-redundancy

go 1.26.0

require (
	github.com/Masterminds/semver/v3 v3.5.0
	github.com/alecthomas/kong v1.17.0
	github.com/bitfield/script v0.25.2
	github.com/creack/pty v1.1.24
	github.com/kballard/go-shellquote v0.0.0-20180428030007-95032a82bc51
	github.com/mattn/go-isatty v0.0.20
	github.com/rogpeppe/go-internal v1.16.0
	github.com/rs/zerolog v1.35.1
	golang.org/x/term v0.48.0
)

require (
	github.com/itchyny/gojq v0.12.13 // indirect
	github.com/itchyny/timefmt-go v0.1.5 // indirect
	github.com/mattn/go-colorable v0.1.14 // indirect
	golang.org/x/sys v0.50.0
	golang.org/x/tools v0.26.0 // indirect
	mvdan.cc/sh/v3 v3.7.0 // indirect
)
