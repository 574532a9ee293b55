print("pi")
