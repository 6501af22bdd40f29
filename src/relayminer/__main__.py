from relayminer.cli import main

main()
