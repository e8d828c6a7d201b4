from listrak_sync.cli import main

main()
