package clidoc

import (
	"fmt"
	"strings"
)

// Bash returns a bash completion script for program. It asks the program itself for the
// candidates (urfave/cli's --generate-bash-completion), so it knows every command and flag
// of the installed version. The typed words are passed as arguments, never evaluated.
func Bash(program string) string {
	fn := "_" + strings.NewReplacer("-", "_", ".", "_").Replace(program) + "_complete"
	return fmt.Sprintf(`# bash completion for %[1]s; generated, do not edit.
# The candidates come from "%[1]s ... --generate-bash-completion".
%[2]s() {
    local cur="${COMP_WORDS[COMP_CWORD]}"
    local -a words=("${COMP_WORDS[@]:0:COMP_CWORD}")
    local opts
    if [[ "$cur" == -* ]]; then
        opts=$("${words[@]}" "$cur" --generate-bash-completion 2>/dev/null)
    else
        opts=$("${words[@]}" --generate-bash-completion 2>/dev/null)
    fi
    local IFS=$'\n'
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o bashdefault -o default -F %[2]s %[1]s
`, program, fn)
}

// Zsh returns a zsh completion function (an autoloaded _<program> file) for program, asking
// the program for candidates like Bash.
func Zsh(program string) string {
	return fmt.Sprintf(`#compdef %[1]s
# zsh completion for %[1]s; generated, do not edit.
# The candidates come from "%[1]s ... --generate-bash-completion".
local -a opts
local cur=${words[CURRENT]}
if [[ "$cur" == -* ]]; then
  opts=("${(@f)$(${words[1,CURRENT-1]} $cur --generate-bash-completion 2>/dev/null)}")
else
  opts=("${(@f)$(${words[1,CURRENT-1]} --generate-bash-completion 2>/dev/null)}")
fi
if [[ -n "${opts[1]}" ]]; then
  _describe 'values' opts
else
  _files
fi
`, program)
}
